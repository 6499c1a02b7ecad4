"""``sentinel console``: the operations team's alert queue in the browser (docs/console.md).

The pure queue is :mod:`streams.core.triage`; here are its shell: the Kafka reader and
writer (:mod:`.feed`), who may use it (:mod:`.auth`), the HTTP routes (:mod:`.server`),
the triage actions (:mod:`.actions`) and the page itself (``static/``: plain HTML, CSS and
JavaScript, no build step, nothing fetched from the internet).
"""
