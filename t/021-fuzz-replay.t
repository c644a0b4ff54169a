# vim:set ft= ts=4 sw=4 et fdm=marker:
# The fuzz corpus kept in fuzz/corpus/ (the inputs libFuzzer found
# interesting, `make fuzz`), replayed through the same harnesses built with
# gcc and AddressSanitizer + UBSan: each harness checks what its parser
# promises (fuzz/fuzz_*.c), so a regression on any kept input fails here.

use strict;
use warnings;

use Test::More;

for my $t (qw(json multipart)) {
    my @inputs = glob("fuzz/corpus/$t/*");
    ok(@inputs >= 5, "fuzz/corpus/$t holds a corpus (" . @inputs . " inputs)");

    my $out = do {
        local $ENV{LD_PRELOAD};     # the harness has its own sanitizer
        delete $ENV{LD_PRELOAD};
        `make -s --no-print-directory fuzz-replay FUZZ_TARGETS=$t 2>&1`;
    };

    is($?, 0, "$t: every kept input passes the harness") or diag($out);
    like($out, qr/fuzz-replay $t: replayed ${\ scalar @inputs} inputs/,
         "$t: all " . @inputs . " inputs were run");
}

done_testing();
