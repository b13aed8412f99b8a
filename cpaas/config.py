"""Configuration, read once from the environment.

Every knob the platform has is here, with its default, so README and the code agree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cpaas.client_address import parse_networks


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _cidrs(name: str) -> tuple[str, ...]:
    """A comma-separated list of CIDRs, checked now so a typo stops the start, not a login."""
    cidrs = tuple(c.strip() for c in os.environ.get(name, "").split(",") if c.strip())
    try:
        parse_networks(cidrs)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return cidrs


#: Seconds a leg may ring (CPAAS_RING_TIMEOUT). The sandbox carrier's default hold is
#: derived from it (sandbox_carrier.carrier.default_hold), so that a click2call agent,
#: answered first, outlasts the customer's ringing and an unanswered customer ends NOANSWER.
DEFAULT_RING_TIMEOUT = 30


@dataclass
class Settings:
    """Process-wide settings. Build with :func:`load`; tests build their own."""

    data_dir: Path = Path("var")
    database_url: str = ""          # empty → SQLite file in data_dir
    redis_url: str = ""             # empty → private redis-server socket in data_dir
    storage_url: str = ""           # empty → local folder data_dir/bucket
    s3_endpoint_url: str | None = None
    s3_sse: str | None = None       # AES256 or aws:kms: S3 encrypts every object at rest
    s3_sse_kms_key_id: str | None = None   # the KMS key of aws:kms (None: S3's default key)
    port: int = 8080
    max_body_bytes: int = 1 * 1024 * 1024
    max_upload_mb: int = 200
    auth_fail_limit: int = 20
    auth_fail_window: int = 60
    trusted_proxies: tuple[str, ...] = ()   # CIDRs whose X-Forwarded-For is believed
    account_secrets: dict[str, str] = field(default_factory=dict)
    admin_password: str | None = None
    # telephony
    freeswitch_esl: str | None = None   # host:port[,host:port…] of the ESL of each node
    freeswitch_esl_password: str = "ClueCon"
    freeswitch_gateway: str = "trunk"             # sofia gateway of outbound calls
    freeswitch_agent_dial: str = "user/{ext}"     # dial string of an agent extension
    #: the media root as the nodes see it (a shared folder); None: ``media_dir``
    freeswitch_media_dir: str | None = None
    #: the platform's address as the nodes reach it: prompts go over HTTP, not a folder
    freeswitch_media_url: str | None = None
    #: a group the platform and FreeSWITCH share: secret prompts in a shared folder are
    #: theirs alone (0750/0640 in that group); None: the platform's user only (0700/0600)
    freeswitch_media_group: str | None = None
    sip_trunk: str = "sip:{number}@127.0.0.1:5070"
    sip_user: str | None = None
    sip_password: str | None = None
    agent_uri: str = "sip:{ext}@127.0.0.1:5070"
    ring_timeout: int = DEFAULT_RING_TIMEOUT
    engine_workers: int = 4
    sip_port: int = 5062          # first local SIP port of the embedded engine pool
    sip_host: str = "127.0.0.1"   # address the engine binds and advertises (SIP and RTP)
    rtp_port: int = 10000         # first RTP port; worker i uses rtp_port + 200 * i
    tts: str = "espeak"
    #: key sealing secrets that cross Redis (cpaas.telephony.sealed); None: a key file
    secret_key: str | None = None
    # reliability (README, "What survives what")
    event_retry_limit: float = 600.0   # seconds an event that fails to apply is retried
    sweep_interval: float = 5.0        # seconds between the sweeper's passes
    sweep_grace: float = 15.0          # seconds a request looks abandoned before it is swept
    # due work (cpaas.scanner): callbacks
    scan_interval: float = 0.2         # seconds between the scanner's passes
    callback_max_late: float = 3600.0  # a callback more overdue than this fails, not dialed
    #: days a call's recordings are kept (decimals allowed); None: kept for ever
    recording_retention_days: float | None = None
    #: transcription backend: whisper (offline, faster-whisper) or aws (Amazon Transcribe)
    transcribe: str = "whisper"
    transcribe_threads: int = 1        # CPU threads of each transcriber process
    # the campaign dialer (cpaas.campaigns.dialer); 0 means unlimited
    account_max_calls: int = 100       # concurrent calls of one account, every kind
    trunk_max_calls: int = 0           # concurrent calls on the trunk, all accounts
    trunk_cps: float = 0.0             # new calls per second on the trunk, all accounts
    max_attempts_per_number_24h: int = 3   # dials of one number by one account's campaigns

    @property
    def sqlite_path(self) -> Path:
        """Where the embedded default keeps its database."""
        return self.data_dir / "cpaas.sqlite3"

    @property
    def effective_database_url(self) -> str:
        """``DATABASE_URL`` or the SQLite file under the data dir."""
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def media_dir(self) -> Path:
        """Rendered prompts and per-call audio the engine plays (local to the engine)."""
        return (self.data_dir / "media").resolve()

    @property
    def secret_key_file(self) -> Path:
        """The sealing key made on first use when ``CPAAS_SECRET_KEY`` is unset (0600)."""
        return self.data_dir / "secret.key"

    @property
    def redis_socket(self) -> Path:
        """Unix socket of the private redis-server started when REDIS_URL is unset."""
        return self.data_dir / "redis" / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        """``REDIS_URL`` or the private redis-server's socket."""
        return self.redis_url or f"unix://{self.redis_socket.resolve()}"

    @property
    def effective_storage_url(self) -> str:
        """``CPAAS_STORAGE_URL`` or the local bucket folder."""
        return self.storage_url or str((self.data_dir / "bucket").resolve())


def load() -> Settings:
    """Settings from the environment."""
    env = os.environ
    # The default trunk follows the sandbox carrier, so CPAAS_SANDBOX_PORT alone moves both.
    sandbox = f"127.0.0.1:{env.get('CPAAS_SANDBOX_PORT') or 5070}"
    secrets = {}
    for name, var in (("account_1", "CPAAS_ACCOUNT_1_AUTH"), ("account_2", "CPAAS_ACCOUNT_2_AUTH")):
        if env.get(var):
            secrets[name] = env[var]
    return Settings(
        data_dir=Path(env.get("CPAAS_DATA_DIR", "var")),
        database_url=env.get("DATABASE_URL", ""),
        redis_url=env.get("REDIS_URL", ""),
        storage_url=env.get("CPAAS_STORAGE_URL", ""),
        s3_endpoint_url=env.get("CPAAS_S3_ENDPOINT_URL") or None,
        s3_sse=env.get("CPAAS_S3_SSE") or None,
        s3_sse_kms_key_id=env.get("CPAAS_S3_SSE_KMS_KEY_ID") or None,
        port=_int("PORT", 8080),
        max_body_bytes=_int("CPAAS_MAX_BODY_BYTES", 1 * 1024 * 1024),
        max_upload_mb=_int("CPAAS_MAX_UPLOAD_MB", 200),
        auth_fail_limit=_int("CPAAS_AUTH_FAIL_LIMIT", 20),
        auth_fail_window=_int("CPAAS_AUTH_FAIL_WINDOW", 60),
        trusted_proxies=_cidrs("CPAAS_TRUSTED_PROXIES"),
        account_secrets=secrets,
        admin_password=env.get("CPAAS_ADMIN_PASSWORD") or None,
        freeswitch_esl=env.get("FREESWITCH_ESL") or None,
        freeswitch_esl_password=env.get("FREESWITCH_ESL_PASSWORD") or "ClueCon",
        freeswitch_gateway=env.get("FREESWITCH_GATEWAY") or "trunk",
        freeswitch_agent_dial=env.get("FREESWITCH_AGENT_DIAL") or "user/{ext}",
        freeswitch_media_dir=env.get("FREESWITCH_MEDIA_DIR") or None,
        freeswitch_media_url=env.get("FREESWITCH_MEDIA_URL") or None,
        freeswitch_media_group=env.get("FREESWITCH_MEDIA_GROUP") or None,
        sip_trunk=env.get("CPAAS_SIP_TRUNK", f"sip:{{number}}@{sandbox}"),
        sip_user=env.get("CPAAS_SIP_USER") or None,
        sip_password=env.get("CPAAS_SIP_PASSWORD") or None,
        agent_uri=env.get("CPAAS_AGENT_URI", f"sip:{{ext}}@{sandbox}"),
        ring_timeout=_int("CPAAS_RING_TIMEOUT", DEFAULT_RING_TIMEOUT),
        engine_workers=_int("CPAAS_ENGINE_WORKERS", 4),
        sip_port=_int("CPAAS_SIP_PORT", 5062),
        sip_host=env.get("CPAAS_SIP_HOST", "127.0.0.1"),
        rtp_port=_int("CPAAS_RTP_PORT", 10000),
        tts=env.get("CPAAS_TTS", "espeak"),
        secret_key=env.get("CPAAS_SECRET_KEY") or None,
        event_retry_limit=_float("CPAAS_EVENT_RETRY_LIMIT", 600.0),
        sweep_interval=_float("CPAAS_SWEEP_INTERVAL", 5.0),
        sweep_grace=_float("CPAAS_SWEEP_GRACE", 15.0),
        scan_interval=_float("CPAAS_SCAN_INTERVAL", 0.2),
        callback_max_late=_float("CPAAS_CALLBACK_MAX_LATE", 3600.0),
        recording_retention_days=(_float("CPAAS_RECORDING_RETENTION_DAYS", 0.0)
                                  if env.get("CPAAS_RECORDING_RETENTION_DAYS") else None),
        transcribe=env.get("CPAAS_TRANSCRIBE", "whisper"),
        transcribe_threads=_int("CPAAS_TRANSCRIBE_THREADS", 1),
        account_max_calls=_int("CPAAS_ACCOUNT_MAX_CALLS", 100),
        trunk_max_calls=_int("CPAAS_TRUNK_MAX_CALLS", 0),
        trunk_cps=_float("CPAAS_TRUNK_CPS", 0.0),
        max_attempts_per_number_24h=_int("CPAAS_MAX_ATTEMPTS_PER_NUMBER_24H", 3),
    )
