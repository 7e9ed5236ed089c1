"""The no-code audience builder, driven by the server.

The builder's form keeps the rule tree as JSON in a hidden field, plus one set of inputs per node,
named ``<path>:<field>``, where the path says where the node is (``r`` the root group, ``r.0`` its
first child, ``r.0.n`` what a *not* negates). Every edit posts the whole form: the server rebuilds
the rule from the JSON and the inputs (:mod:`.form`, reading values with :mod:`.values`), applies
the action of the button pressed (:mod:`.tree`, with the choices of :mod:`.options`), and
re-renders the builder (:mod:`.view`) with the live preview (:mod:`.preview`: count, sample, reach
per channel) or the rule's problems next to the nodes they concern. Typing in a text input
refreshes only the preview, so the input being typed in is never replaced. :mod:`.words` says a
saved rule in words. The routes are in :mod:`web.routes.segments`.
"""
