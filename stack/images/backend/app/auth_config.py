# Authentication settings of the TaylorDash backend, read on every login.
# A known-good copy lives in /app/backup/auth_config.py (the seed's auth rollback restores it).
AUTH_MODE = "password"
LOGIN_ENABLED = True
SESSION_TTL_SECONDS = 3600
TOKEN_BYTES = 32
