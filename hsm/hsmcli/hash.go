package hsmcli

import "crypto"

const crypto256 = crypto.SHA256
