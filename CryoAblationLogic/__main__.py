import sys

from CryoAblationLogic.cli.main import main

sys.exit(main())
