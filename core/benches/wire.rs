fn main() {} // placeholder until the wire benches land
