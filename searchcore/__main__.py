import sys

from searchcore.cli import main

sys.exit(main())
