"""``python -m core``: see core/cli.py."""

import gc
import sys

from core.cli import main

code = main()
# Python's last garbage collection at exit walks every object torch and transformers created:
# 1.1-1.7 s after a model was loaded, against 0.3 s with them frozen (atexit handlers still run;
# the operating system takes the memory back). Here, not in main(), so tests that call main()
# in their own process keep collecting.
gc.freeze()
sys.exit(code)
