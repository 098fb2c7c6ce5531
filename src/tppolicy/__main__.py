import sys

from tppolicy.cli import main

sys.exit(main())
