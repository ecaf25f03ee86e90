import sys

from pagesight.cli import main

sys.exit(main())
