//! `kubectl-ws`: the kubectl plugin form of `trellis ws` (kubectl runs it for `kubectl ws …`).

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = trellis_server::run_ws_plugin(&args).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
