"""The team server's users, passwords, names and rights, set through its REST API as admin.

`up` makes sure of three things here before anyone else uses the server: the admin's
password works, `reader` exists with its password, and the names the pipeline writes to
(its experiment and its registered model) exist and belong to admin, so no other user
can create them first and own them (fakenews.team.mlflow_app refuses their creation to
non-admins; an older server may have let `reader` take one, and its grants there are
revoked). It also creates the role `creators`, which `grant-create` assigns.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from fakenews.errors import PipelineError
from fakenews.team.layout import ADMIN, READER

USERS = {ADMIN: "TEAM_ADMIN_PASSWORD", READER: "TEAM_READER_PASSWORD"}
CREATORS = "creators"  # the role whose members may create (fakenews.team.mlflow_app)
DEFAULT_WORKSPACE = "default"  # MLflow's, where roles live while workspaces are off
Login = tuple[str, str]


@dataclass(frozen=True)
class Accounts:
    uri: str

    def _api(
        self, method: str, path: str, auth: Login, version: int = 2, **kwargs
    ) -> requests.Response:
        return requests.request(
            method, f"{self.uri}/api/{version}.0/mlflow/{path}", auth=auth, timeout=30, **kwargs
        )

    @staticmethod
    def _checked(response: requests.Response, what: str) -> requests.Response:
        if response.status_code != 200:  # the body names the problem, never the password
            raise PipelineError(f"{what} failed: HTTP {response.status_code} {response.text[:200]}")
        return response

    # ---- users and passwords --------------------------------------------------------------

    def can_log_in(self, user: str, password: str) -> bool:
        return self._api("GET", "users/current", (user, password)).status_code == 200

    def ensure_reader(self, admin: Login, password: str) -> None:
        """Create `reader` when missing, and make `password` its password."""
        if self._api("GET", "users/get", admin, params={"username": READER}).status_code != 200:
            self._checked(
                self._api(
                    "POST", "users/create", admin, json={"username": READER, "password": password}
                ),
                f"creating user {READER}",
            )
        elif not self.can_log_in(READER, password):
            self.set_password(READER, password, admin)

    def set_password(self, user: str, password: str, admin: Login) -> None:
        body = {"username": user, "password": password}
        if user == admin[0]:
            body["current_password"] = admin[1]  # MLflow asks for it when you change your own
        self._checked(
            self._api("PATCH", "users/update-password", admin, json=body),
            f"changing the password of {user}",
        )

    # ---- names and rights -----------------------------------------------------------------

    def ensure_names(self, admin: Login, experiments: list[str], models: list[str]) -> list[str]:
        """Create the experiments, registered models and the role `creators` as admin when
        missing, and take back any grant `reader` holds on them; returns what it created."""
        created = [self._ensure_experiment(admin, name) for name in experiments]
        created += [self._ensure_model(admin, name) for name in models]
        if self._creators_role(admin) is None:
            role = {"name": CREATORS, "workspace": DEFAULT_WORKSPACE}
            self._checked(
                self._api("POST", "roles/create", admin, version=3, json=role),
                f"creating the role {CREATORS!r}",
            )
            created.append(f"role {CREATORS!r}")
        return [what for what in created if what]

    def _ensure_experiment(self, admin: Login, name: str) -> str | None:
        params = {"experiment_name": name}
        found = self._api("GET", "experiments/get-by-name", admin, params=params)
        created = found.status_code == 404
        if created:
            new = self._api("POST", "experiments/create", admin, json={"name": name})
            experiment_id = self._checked(new, f"creating experiment {name!r}").json()[
                "experiment_id"
            ]
        else:
            experiment = self._checked(found, f"reading experiment {name!r}").json()["experiment"]
            experiment_id = experiment["experiment_id"]
        self._revoke(admin, READER, "experiment", experiment_id)
        return f"experiment {name!r}" if created else None

    def _ensure_model(self, admin: Login, name: str) -> str | None:
        found = self._api("GET", "registered-models/get", admin, params={"name": name})
        created = found.status_code == 404
        if created:
            new = self._api("POST", "registered-models/create", admin, json={"name": name})
            self._checked(new, f"creating registered model {name!r}")
        else:
            self._checked(found, f"reading registered model {name!r}")
        self._revoke(admin, READER, "registered_model", name)
        return f"registered model {name!r}" if created else None

    def _revoke(self, admin: Login, user: str, resource_type: str, resource_id: str) -> None:
        body = {"username": user, "resource_type": resource_type, "resource_id": resource_id}
        revoked = self._api("POST", "users/permissions/revoke", admin, version=3, json=body)
        if revoked.status_code not in (200, 404):  # 404: it held none
            self._checked(revoked, f"revoking {user}'s grant on {resource_type} {resource_id}")

    def _creators_role(self, admin: Login) -> int | None:
        roles = self._checked(
            self._api(
                "GET", "roles/list", admin, version=3, params={"workspace": DEFAULT_WORKSPACE}
            ),
            "listing roles",
        ).json()
        return next((r["id"] for r in roles.get("roles", []) if r["name"] == CREATORS), None)

    def set_creator(self, user: str, admin: Login, allowed: bool = True) -> None:
        """Give `user` the role `creators` (or take it away)."""
        role_id = self._creators_role(admin)
        if role_id is None:
            raise PipelineError(f"the role {CREATORS!r} is missing; run `make team-up` first")
        body = {"username": user, "role_id": role_id}
        if allowed:
            response = self._api("POST", "roles/assign", admin, version=3, json=body)
        else:
            response = self._api("DELETE", "roles/unassign", admin, version=3, json=body)
        self._checked(
            response, f"{'granting' if allowed else 'revoking'} {user} the right to create"
        )
