"""Computed traits: statistics a tenant's purchase history says about each customer.

:mod:`core.traits.summary` turns transactions into the per-customer summary the models read;
:mod:`core.traits.clv` fits the BG/NBD and Gamma-Gamma models and predicts purchases, the
probability of being alive and lifetime value; :mod:`core.traits.rfm` scores recency, frequency
and monetary value by quintiles and names the marketing segments. All are pure functions with
no database involved.
"""
