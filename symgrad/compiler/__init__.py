"""The compiler: differentiate, optimize, print and generate, verify."""
