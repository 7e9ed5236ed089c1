"""Local fakes of outside services (providers), for tests and benchmarks."""
