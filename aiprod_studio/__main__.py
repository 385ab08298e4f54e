from aiprod_studio.cli import main

raise SystemExit(main())
