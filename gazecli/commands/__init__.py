"""One thin module per subcommand: flags -> settings model -> one core call -> report."""
