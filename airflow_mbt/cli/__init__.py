"""The ``mbt`` command line (argparse; heavy libraries are imported only by the commands that run steps)."""
