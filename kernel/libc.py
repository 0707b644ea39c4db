"""libc's functions and the C types kernel/ passes to them, made from `_ctypes` (the C half of
the stdlib's ctypes) without importing the `ctypes` package itself.

`import ctypes` builds some sixty types and function wrappers: ~1.4 ms here, against ~0.5 ms
for `_ctypes` and this module, and `vzctl exec` may spend only 5 ms beyond a bare interpreter
(issue 4). Each type is made as ctypes makes its own (a `_type_` code on `_SimpleCData`), so
it converts, sizes and aligns the same; tests/kernel/test_libc.py checks that against ctypes.
Only what kernel/ uses is here.
"""

from __future__ import annotations

from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_USE_ERRNO,
    RTLD_LOCAL,
    CFuncPtr,
    Structure,
    _SimpleCData,
    addressof,
    byref,
    dlopen,
    get_errno,
    sizeof,
)

__all__ = ["Structure", "addressof", "byref", "c_char", "c_int", "c_long", "c_size_t", "c_uint", "c_uint8", "c_uint32",
           "c_uint64", "c_ulong", "c_ushort", "c_void_p", "function", "get_errno", "sizeof"]


class c_char(_SimpleCData):
    _type_ = "c"


class c_ushort(_SimpleCData):
    _type_ = "H"


class c_int(_SimpleCData):
    _type_ = "i"


class c_uint(_SimpleCData):
    _type_ = "I"


class c_long(_SimpleCData):
    _type_ = "l"


class c_ulong(_SimpleCData):
    _type_ = "L"


class c_uint8(_SimpleCData):
    _type_ = "B"


class c_void_p(_SimpleCData):
    _type_ = "P"


# LP64 (x86_64, aarch64): the aliases ctypes makes there
c_uint32 = c_uint
c_uint64 = c_size_t = c_ulong


class _Process:
    """The running program and the libraries it loaded (ctypes' `CDLL(None)`): a function
    pointer looks its symbol up through `_handle`."""

    _handle = dlopen(None, RTLD_LOCAL)


def function(name: str, restype: type[_SimpleCData] = c_int) -> CFuncPtr:
    """libc's `name` returning `restype`; errno after each call is kept for `get_errno()`
    (ctypes' `CDLL(None, use_errno=True).name`)."""

    class Function(CFuncPtr):
        _flags_ = FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO
        _restype_ = restype

    return Function((name, _Process))
