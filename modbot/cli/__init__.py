"""The command line: argument parsing, one service function per command, logging set-up."""
