"""Problem families shipped with cfbench (installed as ``cfbench.problems``)."""
