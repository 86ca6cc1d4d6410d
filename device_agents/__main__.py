"""`python -m device_agents COMMAND ...`: the same as the `edgeprune-agent` console script."""

from device_agents.cli import main

if __name__ == "__main__":
    main()
