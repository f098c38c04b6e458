//! One observe → judge pass, as `lenscap scan` runs it.
