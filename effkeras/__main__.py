from effkeras.cli import main

raise SystemExit(main())
