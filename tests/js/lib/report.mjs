// Every check prints one JSON object as its last line of standard output; the
// Rust test that ran it parses that line and asserts on it.

/** Prints `result` as the report line and exits 0. */
export function report(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

/** Runs `main(argv)`; an exception is printed and exits 1. */
export function run(main) {
  main(process.argv.slice(2)).then(report, (err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  });
}
