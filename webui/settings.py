"""``autoflow webui``'s configuration, read from the environment (``AUTOFLOW_WEBUI_*``).

One settings object (pydantic-settings); the chart and the kustomize base set these from a
ConfigMap and the OIDC client secret and session key from a Secret::

    AUTOFLOW_WEBUI_OIDC_ISSUER          https://dex.example.com          (cluster mode)
    AUTOFLOW_WEBUI_OIDC_CLIENT_ID       autoflow
    AUTOFLOW_WEBUI_OIDC_CLIENT_SECRET   (from a Secret)
    AUTOFLOW_WEBUI_OIDC_SCOPES          openid profile email groups
    AUTOFLOW_WEBUI_OIDC_USERNAME_CLAIM  email
    AUTOFLOW_WEBUI_OIDC_GROUPS_CLAIM    groups
    AUTOFLOW_WEBUI_OIDC_USER_PREFIX     ""   (as the API server's --oidc-username-prefix)
    AUTOFLOW_WEBUI_OIDC_GROUP_PREFIX    ""   (as --oidc-groups-prefix)
    AUTOFLOW_WEBUI_REDIRECT_URL         https://autoflow.example.com/api/auth/callback
    AUTOFLOW_WEBUI_SESSION_KEY          a Fernet key (from a Secret; shared by replicas)
    AUTOFLOW_WEBUI_SESSION_LIFETIME     28800 (seconds)
    AUTOFLOW_WEBUI_INSECURE_COOKIE      false (true only for plain-HTTP development)
    AUTOFLOW_WEBUI_NAMESPACES           namespaces offered (comma-separated; default: all the
                                        person may list)
    AUTOFLOW_WEBUI_TOKEN                the workspace access token (default: random)
    AUTOFLOW_STORE_URL                  the run store (cluster: PostgreSQL)
"""

from __future__ import annotations

import pydantic
import pydantic_settings


class WebSettings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(env_prefix="AUTOFLOW_WEBUI_")

    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: pydantic.SecretStr = pydantic.SecretStr("")
    oidc_scopes: str = "openid profile email groups"
    oidc_username_claim: str = "email"
    oidc_groups_claim: str = "groups"
    oidc_user_prefix: str = ""
    oidc_group_prefix: str = ""
    redirect_url: str = ""
    session_key: pydantic.SecretStr = pydantic.SecretStr("")
    session_lifetime: int = pydantic.Field(default=8 * 3600, ge=60, le=7 * 86400)
    insecure_cookie: bool = False
    namespaces: str = ""
    token: pydantic.SecretStr = pydantic.SecretStr("")
    store_url: str = pydantic.Field(default="", validation_alias="AUTOFLOW_STORE_URL")

    def namespace_list(self) -> list[str] | None:
        names = [n.strip() for n in self.namespaces.split(",") if n.strip()]
        return names or None
