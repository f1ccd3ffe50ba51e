"""Human input: forms that pause runs, their deliveries and tokens, submission, and deadlines."""
