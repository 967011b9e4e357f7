"""Red teaming: probe a model (or a guarded app) with harmful and benign prompts."""
