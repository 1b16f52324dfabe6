"""`python -m hydra_repro <verb>`: the same as the `hydra-repro` console script."""

from hydra_repro.cli import main

raise SystemExit(main())
