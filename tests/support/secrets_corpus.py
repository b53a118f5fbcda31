"""Secret forms as they turn up in logs, events, objects and labels, and look-alikes to keep.

Each form carries a secret made for it (random-looking, unique, in the shape
its issuer uses) inside the text it appears in. A test plants the text and
checks that the secret, and its tail, are gone while the context stays. The secrets
are made by :mod:`tests.support.secret_forms`.
``strong`` forms must also be masked in a Prometheus label value, where a bare
``name: value`` is not read as a pair (``auth-service:8080`` is an address).
"""

from __future__ import annotations

import base64
import string

from tests.support.secret_forms import (
    ALNUM,
    Form,
    alnum,
    b64,
    form,
    hexs,
    jwt,
    lower,
    pem,
    pick,
    rng,
    word,
)

__all__ = ["CORPUS", "LOOKALIKES", "Form"]

_key_body = b64(600)
_pgp_body = b64(500)
_ssh_body = b64(400)
_ec_body = b64(120)
_sa_body = b64(300)
_enc_body = b64(300)

CORPUS: tuple[Form, ...] = (
    # Go header maps, as net/http prints them.
    form(
        "go-header-bearer",
        "request headers map[Accept:[*/*] Authorization:[Bearer {s}] User-Agent:[Go]]",
        alnum(40),
        "User-Agent:[Go]",
    ),
    form("go-header-basic", "upstream map[Authorization:[Basic {s}]]", b64(24), "upstream"),
    form(
        "json-header-array",
        '{"headers":{"Authorization":["Bearer {s}"],"Accept":["*/*"]}}',
        alnum(36),
        '"Accept"',
    ),
    form(
        "go-header-api-key",
        "sending map[X-Api-Key:[{s}] Content-Type:[application/json]]",
        alnum(32),
        "Content-Type",
    ),
    form(
        "go-header-cookie",
        "req map[Cookie:[session={s}] Accept:[text/html]]",
        alnum(32),
        "Accept:[text/html]",
    ),
    form(
        "header-line-bearer",
        "> Authorization: Bearer {s}",
        alnum(48) + "." + alnum(12),
        "Authorization",
    ),
    form("header-line-basic", "Authorization: Basic {s}", b64(27), "Authorization: Basic"),
    form(
        "header-private-token",
        "curl -H 'PRIVATE-TOKEN: {s}' https://gitlab.example.com/api/v4/projects",
        alnum(26),
        "gitlab.example.com",
    ),
    form("header-set-cookie", "Set-Cookie: sid={s}; Path=/; HttpOnly", alnum(40), "Set-Cookie"),
    form("header-vault", "X-Vault-Token: {s}", alnum(30), "X-Vault-Token"),
    # Flags on command lines (container args, ps output).
    form(
        "flag-auth-token",
        "exec /bin/agent --auth-token {s} --listen :9000",
        alnum(32),
        "--listen :9000",
    ),
    form(
        "flag-client-secret",
        "oauth2-proxy --client-id=web --client-secret {s} --cookie-secure",
        alnum(32),
        "--client-id=web",
    ),
    form(
        "flag-password-space",
        "pg_dump --host db --password {s} --dbname shop",
        word(),
        "--dbname shop",
    ),
    form("flag-password-quoted", 'backup --password="{s}" --target s3', word(), "--target s3"),
    form("flag-api-key-eq", "uploader --api-key={s} --verbose", alnum(32), "--verbose"),
    form("flag-db-password", "migrate --db-password {s} up", word(), "up"),
    form("mysql-glued", "mysql -u root -p{s} -h mysql.shop.svc shop", word(), "-h mysql.shop.svc"),
    form("mysql-spaced", "mysqldump -h db -u app -p {s} shop", word(), "shop"),
    form(
        "docker-login-p",
        "docker login -u ci -p {s} registry.example.com",
        alnum(24),
        "registry.example.com",
    ),
    form("docker-login-password", "docker login --password {s} ghcr.io", alnum(24), "ghcr.io"),
    form("sshpass", "sshpass -p {s} ssh deploy@10.0.0.5", word(), "deploy@10.0.0.5"),
    form("redis-cli", "redis-cli -h redis -a {s} ping", word(), "ping"),
    form("curl-user", "curl -u admin:{s} https://es.example.com/_cat", word(), "es.example.com"),
    # Private keys.
    form(
        "pgp-private",
        "key:\n" + pem("PGP PRIVATE KEY BLOCK", "{s}") + "\nimported",
        _pgp_body,
        "imported",
    ),
    form("rsa-private", pem("RSA PRIVATE KEY", "{s}") + "\nnext line", _key_body, "next line"),
    form("openssh-private", pem("OPENSSH PRIVATE KEY", "{s}"), _ssh_body, "OPENSSH"),
    form(
        "ec-private-truncated",
        "dump: " + pem("EC PRIVATE KEY", "{s}", end=False),
        _ec_body,
        "dump:",
    ),
    form("encrypted-private", pem("ENCRYPTED PRIVATE KEY", "{s}"), _enc_body),
    form(
        "gcp-sa-json",
        '{"type": "service_account", "private_key": "'
        + pem("PRIVATE KEY", "{s}", nl="\\n")
        + '\\n", "client_email": "a@p.iam.gserviceaccount.com"}',
        _sa_body,
        "client_email",
    ),
    # Kubernetes env as separate name/value fields.
    form(
        "env-json",
        'spec {"env":[{"name":"DB_PASSWORD","value":"{s}"},{"name":"LOG_LEVEL","value":"info"}]}',
        word(),
        "LOG_LEVEL",
        '"info"',
    ),
    form(
        "env-yaml",
        "env:\n- name: DB_PASSWORD\n  value: {s}\n- name: PORT\n  value: '8080'",
        word(),
        "PORT",
        "8080",
    ),
    form("env-yaml-quoted", '    - name: API_TOKEN\n      value: "{s}"', alnum(30), "API_TOKEN"),
    form(
        "env-go-struct",
        "env: [{Name:STRIPE_SECRET Value:{s} ValueFrom:nil}]",
        alnum(30),
        "ValueFrom:nil",
    ),
    form(
        "env-json-pretty",
        '{\n  "name": "SMTP_PASSWORD",\n  "value": "{s}"\n}',
        word(),
        "SMTP_PASSWORD",
    ),
    form(
        "env-describe",
        "    Environment:\n      DB_PASSWORD:  {s}\n      PORT:  8080",
        word(),
        "PORT:  8080",
        strong=False,
    ),
    # Token formats.
    form("stripe-live", "charge failed key={s}", "sk_live_51" + alnum(97), "charge failed"),
    form("stripe-restricted", "using {s} for refunds", "rk_live_51" + alnum(60), "for refunds"),
    form("stripe-test", "STRIPE_KEY {s}", "sk_test_" + alnum(40)),
    form("stripe-webhook", "webhook secret loaded: {s}", "whsec_" + alnum(32)),
    form("gitlab-pat", "git remote token {s} expired", "glpat-" + alnum(20), "expired"),
    form(
        "aws-key-id",
        "credentials from env: {s} (us-east-1)",
        "AKIA" + pick(string.ascii_uppercase + string.digits, 16),
        "us-east-1",
    ),
    form("aws-secret-key", "aws_secret_access_key = {s}", b64(30), "aws_secret_access_key"),
    form("aws-session", "AWS_SESSION_TOKEN={s}", b64(90)),
    form("github-classic", "cloning with {s}", "ghp_" + alnum(36), "cloning"),
    form(
        "github-fine", "token {s} in use", "github_pat_11" + alnum(20) + "_" + alnum(59), "in use"
    ),
    form(
        "slack-bot",
        "slack: {s} rejected",
        "xoxb-"
        + str(rng.randrange(10**11, 10**12))
        + "-"
        + str(rng.randrange(10**11, 10**12))
        + "-"
        + alnum(24),
        "rejected",
    ),
    form(
        "slack-webhook",
        "POST https://hooks.slack.com/services/{s} 200",
        "T0" + alnum(8) + "/B0" + alnum(8) + "/" + alnum(24),
        "hooks.slack.com",
    ),
    form("npm", "npm ERR! token {s} is invalid", "npm_" + alnum(36), "npm ERR!"),
    form("npmrc", "//registry.npmjs.org/:_authToken={s}", alnum(36), "registry.npmjs.org"),
    form(
        "pypi", "twine upload -u __token__ {s}", "pypi-AgEIcHlwaS5vcmc" + alnum(80), "twine upload"
    ),
    form(
        "openai",
        "openai.AuthenticationError for {s}",
        "sk-proj-" + alnum(48),
        "AuthenticationError",
    ),
    form(
        "anthropic",
        "anthropic client key {s}",
        "sk-ant-api03-" + alnum(93) + "-" + alnum(6),
        "anthropic client",
    ),
    form("twilio-sid", "twilio account {s}", "AC" + hexs(32), "twilio account"),
    form("twilio-key", "twilio api key {s}", "SK" + hexs(32), "twilio api"),
    form("sendgrid", "mail via {s}", "SG." + alnum(22) + "." + alnum(43), "mail via"),
    form("heroku", "heroku auth {s}", "HRKU-AA" + alnum(58), "heroku"),
    form("digitalocean", "doctl auth init -t {s}", "dop_v1_" + hexs(64), "doctl"),
    form("vault", "vault login {s}", "hvs." + alnum(90), "vault login"),
    form("k8s-sa-jwt", "projected token {s} mounted", jwt(), "mounted"),
    form("google-api-key", "maps key {s} quota", "AIza" + alnum(35), "quota"),
    form("google-oauth", "gcloud access {s}", "ya29." + alnum(120), "gcloud"),
    form(
        "discord",
        "discord bot {s}",
        "M" + alnum(23) + "." + alnum(6) + "." + alnum(27),
        "discord bot",
    ),
    form(
        "telegram",
        "bot {s} started",
        str(rng.randrange(10**8, 10**9)) + ":" + alnum(35),
        "started",
    ),
    form("mailchimp", "list sync {s}", lower(32) + "-us14", "list sync"),
    form("square", "square {s}", "sq0csp-" + alnum(43), "square"),
    form("docker-hub", "DOCKERHUB {s}", "dckr_pat_" + alnum(27)),
    form("grafana", "grafana service account {s}", "glsa_" + alnum(32) + "_" + hexs(8), "grafana"),
    form("shopify", "shop token {s}", "shpat_" + hexs(32), "shop token"),
    form(
        "age",
        "sops key {s}",
        "AGE-SECRET-KEY-1" + pick(string.ascii_uppercase + string.digits, 58),
        "sops key",
    ),
    # URLs with credentials.
    form(
        "sentry-dsn",
        "SENTRY_DSN=https://{s}@o447951.ingest.sentry.io/5428563",
        hexs(32),
        "ingest.sentry.io",
    ),
    form(
        "postgres-url",
        "dial postgres://shop:{s}@db.shop.svc:5432/shop failed",
        word(),
        "db.shop.svc:5432",
    ),
    form("amqp-url", "amqp://guest:{s}@rabbitmq:5672/", word(), "rabbitmq:5672"),
    form(
        "mongodb-srv",
        "mongodb+srv://app:{s}@cluster0.mongodb.net/db",
        word(),
        "cluster0.mongodb.net",
    ),
    form("redis-url", "redis://:{s}@redis-master:6379/0", word(), "redis-master:6379"),
    form(
        "git-clone",
        "git clone https://oauth2:{s}@gitlab.example.com/ops/infra.git",
        alnum(20),
        "gitlab.example.com",
    ),
    form("url-raw-at", "jdbc:mysql://app:{s}@db:3306/shop", "p@" + alnum(10), "db:3306"),
    # Blobs.
    form("base64-blob", "payload {s} end", b64(48), "payload", "end"),
    form("base64-blob-long", "cert bundle {s}", b64(400), "cert bundle"),
    form(
        "urlsafe-blob",
        "session state {s}",
        base64.urlsafe_b64encode(rng.randbytes(33)).decode(),
        "session state",
    ),
    # Prose.
    form("prose-is", "the password is {s}", word(), "the password is"),
    form("prose-colon-is", "password: is {s}", word()),
    form("prose-api-key", "the api key is {s} for prod", alnum(16), "for prod"),
    form("prose-set-to", "root secret was set to {s}.", word(), "root secret"),
    # Password hashes.
    form("htpasswd-apr1", "admin:{s}", "$apr1$" + alnum(8) + "$" + alnum(22), "admin:"),
    form("bcrypt", "user hash {s}", "$2y$10$" + pick(ALNUM + "./", 53), "user hash"),
    form(
        "sha512crypt",
        "root:{s}:19000:0:99999:7:::",
        "$6$rounds=5000$" + alnum(16) + "$" + pick(ALNUM + "./", 86),
        "root:",
    ),
    form("ldap-sha", "userPassword: {s}", "{SSHA}" + b64(24)),
    # Connection strings.
    form(
        "azure-storage",
        "DefaultEndpointsProtocol=https;AccountName=shop;AccountKey={s};EndpointSuffix=core.windows.net",
        b64(64),
        "AccountName=shop",
        "EndpointSuffix",
    ),
    form("sqlserver", "Server=db;Database=shop;User Id=sa;Password={s};", word(), "Database=shop"),
    form(
        "azure-sas",
        "https://shop.blob.core.windows.net/c?sv=2022-11-02&sig={s}&se=2026",
        alnum(40),
        "sv=2022-11-02",
    ),
    form(
        "servicebus",
        "Endpoint=sb://bus.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={s}",
        b64(32),
        "SharedAccessKeyName=root",
    ),
    # kubeconfig.
    form(
        "kubeconfig-client-key",
        "users:\n- name: admin\n  user:\n    client-key-data: {s}",
        b64(200),
        "client-key-data",
    ),
    form(
        "kubeconfig-token",
        "users:\n- name: ci\n  user:\n    token: {s}",
        alnum(32),
        "name: ci",
        strong=False,
    ),
    form(
        "kubeconfig-auth-provider",
        "      config:\n        access-token: {s}\n        expiry: 2026-12-01",
        alnum(40),
        "expiry",
        strong=False,
    ),
    # Assignments and markup.
    form("logfmt", 'level=error msg="auth failed" password={s} user=bob', word(), "user=bob"),
    form("json-password", '{"user": "bob", "password": "{s}"}', word(), '"user": "bob"'),
    form("xml", "<datasource><password>{s}</password></datasource>", word(), "<datasource>"),
    form("sql-alter", "ALTER USER app WITH PASSWORD '{s}';", word(), "ALTER USER app"),
    form("sql-identified", 'CREATE USER shop IDENTIFIED BY "{s}"', word(), "CREATE USER shop"),
    form(
        "java-property",
        "java -Djavax.net.ssl.keyStorePassword={s} -jar app.jar",
        word(),
        "-jar app.jar",
    ),
    form("pgpassword", "PGPASSWORD={s} psql -h db", word(), "psql -h db"),
    form("mysql-root-env", "MYSQL_ROOT_PASSWORD={s}", word()),
    form("amz-security", "x-amz-security-token: {s}", b64(60), "x-amz-security-token"),
    form(
        "json-in-json", '{"log":"{\\"password\\":\\"{s}\\",\\"user\\":\\"bob\\"}"}', word(), "user"
    ),
    form(
        "env-json-escaped",
        '{"msg":"[{\\"name\\":\\"DB_PASSWORD\\",\\"value\\":\\"{s}\\"}]"}',
        word(),
        "DB_PASSWORD",
    ),
    form(
        "header-json-escaped",
        '"{\\"Authorization\\":[\\"Bearer {s}\\"]}"',
        alnum(30),
        "Authorization",
    ),
    form("go-assign", 'password := "{s}"', word(), "password :="),
    form("ruby-hash", ":password => '{s}',", word(), ":password =>"),
    form(
        "yaml-block",
        "auth:\n  password: |\n    {s}\n  user: bob",
        word(),
        "user: bob",
        strong=False,
    ),
    form("yaml-secret", "stringData:\n  webhook-secret: {s}\n", word(), "stringData", strong=False),
)

#: Text the model needs that must pass unchanged (digests, names, ids, addresses, prose).
LOOKALIKES: tuple[str, ...] = (
    "image: registry.example.com/shop/api@sha256:" + hexs(64),
    'Successfully pulled image "nginx:1.25.3" in 2.1s (2.1s including waiting)',
    "pod/api-7d9f8b6c5-x2x4k",
    "homepage-deployment-5f8b9c7d4-qwz9p Back-off restarting failed container",
    "uid: f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    'resourceVersion: "123456789"',
    "containerID: containerd://" + hexs(64),
    'up{instance="auth-service:8080",job="kube-state-metrics"} => 1',
    "dialing token-svc:9100",
    'histogram_quantile(0.99, rate(http_request_duration_seconds_bucket{le="0.5"}[5m]))',
    "traceID=4bf92f3577b34da6a3ce929d0e0e4736 spanID=00f067aa0ba902b7",
    "at org.springframework.beans.factory.support.AbstractAutowireCapableBeanFactory.createBean",
    "GET /apis/apps/v1/namespaces/default/deployments/api 200 12ms",
    "docker run -p 8080:80 nginx",
    "mkdir -p /var/lib/app && ssh -p 2222 deploy@bastion",
    "[INFO] started server [ERROR] failed to bind",
    "kube-apiserver --authorization-mode=Node,RBAC --token-ttl 24h --password-file /etc/pw",
    "kubectl get pods -n monitoring -o wide",
    "the password was rejected for user app",
    "login failed: password is incorrect",
    "the token is expired, refreshing",
    "Basic authentication failed for user bob",
    "tokenizer loaded entries=48211 max_tokens=512 key_count=3",
    "author: bruno keyspace=users monkey business",
    "took 1m30.5s timeout=30s retry_after=5s",
    "pod-template-hash=7d9f8b6c5 controller-revision-hash=6b8f9c7d5",
    "node ip-10-0-1-23.eu-west-1.compute.internal Ready 10.0.1.23",
    "version=v1.29.3+k3s1 go1.21.9",
    "Last State: Terminated Reason: OOMKilled Exit Code: 137",
    "https://grafana.example.com/d/abc123/overview?orgId=1&from=now-1h",
    "alice@example.com opened https://github.com/org/repo/pull/42",
    "ssh://git@github.com/org/repo.git",
    "ConfigMap kube-root-ca.crt mounted at /var/run/secrets/kubernetes.io/serviceaccount",
    "KubePodCrashLooping: container api in shop/api-7d9f8b6c5-x2x4k restarted 5 times",
    "scikit-learn sk-learn-compatible estimator loaded",
    "checksum/config: 9f2c1e0d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e",
    "memory usage 512Mi of 1Gi limit (50%)",
    'level=info msg="config value" name=LOG_LEVEL value=info',
    "http://plausible.analytics:8000/api/event",
)
