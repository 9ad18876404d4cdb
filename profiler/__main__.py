"""``python -m profiler`` runs the CLI."""

from profiler.cli import main

if __name__ == "__main__":
    main()
