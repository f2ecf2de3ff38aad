"""Allow ``python -m rag``."""

from rag.cli import main

raise SystemExit(main())
