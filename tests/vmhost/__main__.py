import sys

from tests.vmhost.launcher import main

sys.exit(main())
