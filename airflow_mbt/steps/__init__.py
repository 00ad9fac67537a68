"""Built-in steps, one module each. Each module exposes ``run(ctx, inputs) -> dict[str, value]``.

See ``specs.py`` for the declared inputs/outputs. ``table`` values are pandas DataFrames,
``json`` values are dicts, ``dir`` values are ``pathlib.Path`` directories (outputs must be
created under ``ctx.work_dir``).
"""
