"""`python -m cnnkit ...` is the same as `cnnkit ...` (torchrun needs the module form)."""

from cnnkit.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
