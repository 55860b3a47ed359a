"""The one exception tree of fleetlab.

```
* FleetlabError
  x UserError              bad input: the CLI prints it as one line, no traceback
    + ConfigError          a malformed file (suite, goals, experiment) or setting
    + NotFoundError        an id, suite, task or prompt variant that does not exist
  x StoreError             the database cannot be used as asked
    + SchemaError          a db from a newer fleetlab, or not a fleetlab db at all
    + IllegalTransition    a task status change the lifecycle forbids
    + LeaseLost            another worker owns the task now
  x ModelError             a model backend failed after its retries
    + AuthenticationError  key missing or rejected
    + ModelRequestError    the API refused the request as malformed (4xx)
  x BudgetExceeded         a goal's tree spent its token or dollar budget
```

Naive datetimes are refused with the built-in ``ValueError`` (see ``fleetlab.clock``), so
callers that validate timestamps need not know this module.
"""

from __future__ import annotations


class FleetlabError(Exception):
    """Root of every error fleetlab raises on purpose."""


class UserError(FleetlabError):
    """Bad input from a person: the message says what was wrong and what to do."""


class ConfigError(UserError):
    """A file or setting is malformed; the message names the file and the field."""


class NotFoundError(UserError):
    """Something named by the user does not exist."""


class StoreError(FleetlabError):
    """The store cannot do what was asked."""


class SchemaError(StoreError, UserError):
    """The database file is from a newer fleetlab, or is not a fleetlab database."""


class IllegalTransition(StoreError):
    """A task status change that the lifecycle does not allow; nothing was written."""


class LeaseLost(StoreError):
    """The task's lease expired and another worker claimed it."""


class ModelError(FleetlabError):
    """A model call failed after the retries allowed."""


class AuthenticationError(ModelError, UserError):
    """The API key is missing or was rejected."""


class ModelRequestError(ModelError):
    """The API refused the request itself (a 4xx other than auth and rate limits)."""


class BudgetExceeded(FleetlabError):
    """A goal's tree has spent its budget."""
