import sys

from guardline.cli import main

sys.exit(main())
