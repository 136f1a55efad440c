"""Fixed example data for the vault and content declarations (the walk runs them).

A vault made with ``EXAMPLE_PASSPHRASE`` holding ``API_TOKEN``, an export of
``DB_PASSWORD`` made with ``EXPORT_PASSPHRASE``, and a file encrypted (armored)
with the vault's data key. Made once with ``_vault_crypto``; fixed so that each
example needs a single request.
"""

from __future__ import annotations

import json

EXAMPLE_PASSPHRASE = "correct horse battery staple"
EXPORT_PASSPHRASE = "export passphrase 2024"
ARGON2 = {"iterations": 3, "lanes": 4, "memory_kib": 65536, "name": "argon2id"}

EXAMPLE_VAULT = json.dumps({
    "entries": {"ciphertext": "cG09mnzweV12ZtzICEGZejW6qDQBBEY6soBr9Ts6ZDN4G7BfnRHOgZglp0L5"
                              "BoaFJN66Pwg=",
                "nonce": "S4wo0L7XYgLYl8Wb"},
    "format": "scp-vault",
    "slots": [{"id": "f4b4cfeefff83a52",
               "kdf": {**ARGON2, "salt": "GWsbuNxZnVtgxq6DqzApJQ=="},
               "label": "primary",
               "wrapped": {"ciphertext": "L5EZYt5FrcQVpS6pIMtDbv6VKx5QuNDLTS7kzkSf52ECN8d8A6f3"
                                         "uzMLvJWiEp+D",
                           "nonce": "UhbWZ/xWPipVy9pm"}}],
    "vault_id": "6f9f7055ee7b544b61360b26e3cba4d9",
    "version": 1,
}, indent=2, sort_keys=True) + "\n"

EXAMPLE_EXPORT = json.dumps({
    "ciphertext": "3o5l/7PYIuWTCXkW1V2uMupK9cr2Bf4Q0DHinV2vzNgsWlPIbECXUKZi1BWoi6Js+scxtw==",
    "format": "scp-vault-export",
    "kdf": {**ARGON2, "salt": "OTipdJwtsitAa7KO8FFGlw=="},
    "nonce": "D9QHXyhM+iP7yZgM",
    "version": 1,
}, indent=2, sort_keys=True) + "\n"

EXAMPLE_ENCRYPTED = ("-----BEGIN SCP ENCRYPTED FILE-----\n"
                     "U0NQRU5DASJx+rBW/7KNsFpExS9HwA5U+N6req+Ya9dOMGNQeWuDNlybA8j/OAoF\n"
                     "NIweH49RGwL4oH2gC41Bnw==\n"
                     "-----END SCP ENCRYPTED FILE-----\n")
EXAMPLE_PLAINTEXT = "hello from the vault\n"
