// The BoGo runner's module, built offline: sources come from the crates.io
// package boring-sys 5.4.0, golang.org/x from Debian's golang-golang-x-*-dev.
module boringssl.googlesource.com/boringssl.git

go 1.27

require (
	golang.org/x/crypto v0.0.0
	golang.org/x/sys v0.0.0
	golang.org/x/term v0.0.0
)

replace (
	golang.org/x/crypto => /usr/share/gocode/src/golang.org/x/crypto
	golang.org/x/sys => /usr/share/gocode/src/golang.org/x/sys
	golang.org/x/term => /usr/share/gocode/src/golang.org/x/term
)
