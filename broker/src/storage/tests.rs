//! The storage thread's agreements with the protocol.

#[test]
fn the_protocol_and_the_engine_agree_on_stream_names() {
    let long = "s".repeat(zhub_protocol::names::MAX_STREAM_LEN);
    let too_long = format!("{long}s");
    let samples = [
        "orders", "a.b_c-1", ".hidden", "", "a/b", "a b", "été", "a\nb", &long, &too_long,
    ];
    for name in samples {
        assert_eq!(
            zhub_protocol::names::check_stream(name).is_ok(),
            zhub_eventlog::check_name(name).is_ok(),
            "{name:?}"
        );
    }
}
