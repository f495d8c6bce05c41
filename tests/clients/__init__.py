"""The generated clients of five languages, each with a program that runs the core flow."""
