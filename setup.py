"""The optional C extension; everything else about the package is in pyproject.toml.

Bulk hashing over Arrow buffers with OpenSSL (ledger/_native.c). `optional=True`: without
a C compiler or OpenSSL headers the install still succeeds and ledger/hashing.py falls back
to hashlib, with identical results and lower throughput."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ledger._native",
            sources=["ledger/_native.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wno-deprecated-declarations"],
            optional=True,
        )
    ]
)
