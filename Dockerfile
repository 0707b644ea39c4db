# One image for the panel stack (web, panel worker, beat) and, for
# evaluation only, a node. Build: docker compose build
FROM debian:12-slim

ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates nodejs npm \
      busybox-static btrfs-progs e2fsprogs quota nftables iproute2 util-linux procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ctpanel
COPY pyproject.toml requirements.lock ./
COPY kernel kernel
COPY worker worker
COPY panel panel
RUN /usr/bin/python3 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir -c requirements.lock .
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY manage.py ./
COPY templates templates
COPY static static
COPY deploy deploy
RUN .venv/bin/python deploy/vendor_static.py && rm -rf node_modules
ENV PATH=/opt/ctpanel/.venv/bin:$PATH
RUN useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin ctpanel
USER ctpanel
