"""Run `reprl` from another source tree (argv[1]) instead of the editable install: python before.py TREE ARGS..."""
import sys

tree = sys.argv.pop(1)
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, tree)
from reprl.cli import main  # noqa: E402

sys.argv[0] = "reprl"
assert __import__("reprl").__file__.startswith(tree), __import__("reprl").__file__
sys.exit(main())
