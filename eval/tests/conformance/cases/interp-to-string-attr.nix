"${{ __toString = self: "ts"; }}"
