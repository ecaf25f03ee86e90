from pagesight.cli import main
import sys
sys.exit(main())
