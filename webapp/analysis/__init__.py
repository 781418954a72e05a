"""A search as a research instrument: learning curves, reward against cost with its Pareto
front, how often each op and input is chosen as the search proceeds, the controller's updates,
and the trials exported as CSV and Parquet."""
