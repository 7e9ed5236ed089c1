"""The no-code journey builder, driven by the server.

A journey's definition (trigger, steps linked by their ``next``-like ports, goal, re-entry) is
edited as a whole: the builder's form keeps it as JSON in a hidden field, with the inputs of the
one thing being edited (the trigger, a step, or the goal and re-entry) in a side panel. Every edit
posts the whole form: the server applies the panel's inputs (:mod:`.forms`), then the action of the
button pressed (:mod:`.edits`; adding a step on a connector, deleting one: :mod:`.graph`), saves the
definition and re-renders the flow (:mod:`.flow`: the graph as rows and side-by-side lanes, with
counts per step) and the panel (:mod:`.panels`), or the problems next to the steps they concern.
:mod:`.words` says triggers and steps in words; a branch's condition is edited with the audience
builder's rule tree (:mod:`.condition`); :mod:`.options` adds the pass templates to the rule's
choices; :mod:`.paths` shows a profile's passes on its 360 view.
The routes are in :mod:`web.routes.journeys`.
"""
