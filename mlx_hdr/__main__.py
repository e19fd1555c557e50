"""``python -m mlx_hdr``: the ``mlx-hdr`` command, for the interpreter that runs it."""

from mlx_hdr.cli import main

if __name__ == "__main__":
    main()
