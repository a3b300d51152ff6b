void vs_daemon_placeholder(void); void vs_daemon_placeholder(void) {}
