package main

// execute runs the CLI and returns the exit code. (Placeholder: the CLI owner replaces this file.)
func execute(args []string) int { return 0 }
