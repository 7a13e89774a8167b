"""The secret that seals what the app keeps in a reviewer's browser (Gradio's BrowserState
encrypts its localStorage values with it): the reviewer's name, tab, queue, filter and card.
The project's own, made once and kept in its store (never in a file of this repository), so
that what a browser kept still reads after a server restart, and on every server of a team's
project. Gradio hands it to every page it serves: it keeps one project's page from reading
another's values, not a secret from the people who use the app."""
from __future__ import annotations

import secrets

from .project import Project

META_KEY = "browser_state_secret"


def browser_secret(project: Project) -> str:
    return project.store.meta.get_or_set(META_KEY, secrets.token_urlsafe(24))
