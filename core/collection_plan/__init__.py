"""The collection plan: what data each tenant collects, from which sources, how well."""
