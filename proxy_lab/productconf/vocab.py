"""What each product calls its directives, to tell a squid.conf from a tinyproxy.conf.

`SQUID` is every `TAG:` of the squid.conf Debian ships with squid 5.7 (the directives Squid 5 knows,
obsolete ones included) plus the parser's own `include`, `if`, `else` and `endif`. Squid compares
directive names case-sensitively. `TINYPROXY` is tinyproxy 1.11's `conf-tokens.gperf`, compared
case-insensitively (`%ignore-case`); it has no `BasicAuthRealm` and no `IPVersion` (1.11.1 rejects
both as syntax errors).
"""

from __future__ import annotations

SQUID: frozenset[str] = frozenset(
    """
    broken_vary_encoding cache_vary error_map external_refresh_check location_rewrite_program
    refresh_stale_hit dns_v4_first cache_peer_domain ie_refresh sslproxy_cafile sslproxy_capath
    sslproxy_cipher sslproxy_client_certificate sslproxy_client_key sslproxy_flags sslproxy_options
    sslproxy_version hierarchy_stoplist log_access log_icap ignore_ims_on_miss balance_on_multiple_ip
    chunked_request_body_max_size dns_v4_fallback emulate_httpd_log forward_log ftp_list_width
    ignore_expect_100 log_fqdn log_ip_on_direct maximum_single_addr_tries referer_log update_headers
    url_rewrite_concurrency useragent_log dns_testnames extension_methods zero_buffers incoming_rate
    server_http11 upgrade_http0.9 zph_local header_access httpd_accel_no_pmtu_disc wais_relay_host
    wais_relay_port workers cpu_affinity_map shared_memory_locking hopeless_kid_revival_delay auth_param
    authenticate_cache_garbage_interval authenticate_ttl authenticate_ip_ttl external_acl_type acl
    proxy_protocol_access follow_x_forwarded_for acl_uses_indirect_client
    delay_pool_uses_indirect_client log_uses_indirect_client tproxy_uses_indirect_client spoof_client_ip
    http_access adapted_http_access http_reply_access icp_access htcp_access htcp_clr_access miss_access
    ident_lookup_access reply_body_max_size on_unsupported_protocol auth_schemes http_port https_port
    ftp_port tcp_outgoing_tos clientside_tos tcp_outgoing_mark mark_client_packet mark_client_connection
    qos_flows tcp_outgoing_address host_verify_strict client_dst_passthru tls_outgoing_options
    ssl_unclean_shutdown ssl_engine sslproxy_session_ttl sslproxy_session_cache_size
    sslproxy_foreign_intermediate_certs sslproxy_cert_sign_hash ssl_bump sslproxy_cert_error
    sslproxy_cert_sign sslproxy_cert_adapt sslpassword_program sslcrtd_program sslcrtd_children
    sslcrtvalidator_program sslcrtvalidator_children cache_peer cache_peer_access neighbor_type_domain
    dead_peer_timeout forward_max_tries cache_mem maximum_object_size_in_memory memory_cache_shared
    memory_cache_mode memory_replacement_policy cache_replacement_policy minimum_object_size
    maximum_object_size cache_dir store_dir_select_algorithm max_open_disk_fds cache_swap_low
    cache_swap_high logformat access_log icap_log logfile_daemon stats_collection cache_store_log
    cache_swap_state logfile_rotate mime_table log_mime_hdrs pid_filename client_netmask
    strip_query_terms buffered_logs netdb_filename cache_log debug_options coredump_dir ftp_user
    ftp_passive ftp_epsv_all ftp_epsv ftp_eprt ftp_sanitycheck ftp_telnet_protocol diskd_program
    unlinkd_program pinger_program pinger_enable url_rewrite_program url_rewrite_children
    url_rewrite_host_header url_rewrite_access url_rewrite_bypass url_rewrite_extras url_rewrite_timeout
    store_id_program store_id_extras store_id_children store_id_access store_id_bypass cache send_hit
    store_miss max_stale refresh_pattern quick_abort_min quick_abort_max quick_abort_pct read_ahead_gap
    negative_ttl positive_dns_ttl negative_dns_ttl range_offset_limit minimum_expiry_time
    store_avg_object_size store_objects_per_bucket request_header_max_size reply_header_max_size
    request_body_max_size client_request_buffer_max_size broken_posts adaptation_uses_indirect_client
    via vary_ignore_expire request_entities request_header_access reply_header_access
    request_header_replace reply_header_replace request_header_add reply_header_add note
    relaxed_header_parser collapsed_forwarding collapsed_forwarding_access
    shared_transient_entries_limit forward_timeout connect_timeout peer_connect_timeout read_timeout
    write_timeout request_timeout request_start_timeout client_idle_pconn_timeout
    ftp_client_idle_timeout client_lifetime pconn_lifetime half_closed_clients server_idle_pconn_timeout
    ident_timeout shutdown_lifetime cache_mgr mail_from mail_program cache_effective_user
    cache_effective_group httpd_suppress_version_string visible_hostname unique_hostname
    hostname_aliases umask announce_period announce_host announce_file announce_port
    httpd_accel_surrogate_id http_accel_surrogate_remote esi_parser delay_pools delay_class delay_access
    delay_parameters delay_initial_bucket_level client_delay_pools client_delay_initial_bucket_level
    client_delay_parameters client_delay_access response_delay_pool response_delay_pool_access
    wccp_router wccp2_router wccp_version wccp2_rebuild_wait wccp2_forwarding_method wccp2_return_method
    wccp2_assignment_method wccp2_service wccp2_service_info wccp2_weight wccp_address wccp2_address
    client_persistent_connections server_persistent_connections persistent_connection_after_error
    detect_broken_pconn digest_generation digest_bits_per_entry digest_rebuild_period
    digest_rewrite_period digest_swapout_chunk_size digest_rebuild_chunk_percentage snmp_port
    snmp_access snmp_incoming_address snmp_outgoing_address icp_port htcp_port log_icp_queries
    udp_incoming_address udp_outgoing_address icp_hit_stale minimum_direct_hops minimum_direct_rtt
    netdb_low netdb_high netdb_ping_period query_icmp test_reachability icp_query_timeout
    maximum_icp_query_timeout minimum_icp_query_timeout background_ping_rate mcast_groups
    mcast_miss_addr mcast_miss_ttl mcast_miss_port mcast_miss_encode_key mcast_icp_query_timeout
    icon_directory global_internal_static short_icon_urls error_directory error_default_language
    error_log_languages err_page_stylesheet err_html_text email_err_data deny_info
    nonhierarchical_direct prefer_direct cache_miss_revalidate always_direct never_direct
    incoming_udp_average incoming_tcp_average incoming_dns_average min_udp_poll_cnt min_dns_poll_cnt
    min_tcp_poll_cnt accept_filter client_ip_max_connections tcp_recv_bufsize icap_enable
    icap_connect_timeout icap_io_timeout icap_service_failure_limit icap_service_revival_delay
    icap_preview_enable icap_preview_size icap_206_enable icap_default_options_ttl
    icap_persistent_connections adaptation_send_client_ip adaptation_send_username
    icap_client_username_header icap_client_username_encode icap_service icap_class icap_access
    ecap_enable ecap_service loadable_modules adaptation_service_set adaptation_service_chain
    adaptation_access adaptation_service_iteration_limit adaptation_masterx_shared_names adaptation_meta
    icap_retry icap_retry_limit check_hostnames allow_underscore dns_retransmit_interval dns_timeout
    dns_packet_max dns_defnames dns_multicast_local dns_nameservers hosts_file append_domain
    ignore_unknown_nameservers ipcache_size ipcache_low ipcache_high fqdncache_size
    configuration_includes_quoted_values memory_pools memory_pools_limit forwarded_for cachemgr_passwd
    client_db refresh_all_ims reload_into_ims connect_retries retry_on_error as_whois_server
    offline_mode uri_whitespace chroot pipeline_prefetch high_response_time_warning
    high_page_fault_warning high_memory_warning sleep_after_fork windows_ipaddrchangemonitor eui_lookup
    max_filedescriptors force_request_body_continuation http_upgrade_request_protocols
    server_pconn_for_nonretriable happy_eyeballs_connect_timeout happy_eyeballs_connect_gap
    happy_eyeballs_connect_limit
    include if else endif
    """.split()
)

TINYPROXY: frozenset[str] = frozenset(
    """
    logfile pidfile anonymous viaproxyname defaulterrorfile statfile stathost xtinyproxy syslog bindsame
    disableviaheader port maxclients maxspareservers minspareservers startservers maxrequestsperchild
    timeout connectport user group listen allow deny bind basicauth errorfile addheader filter
    filterurls filterextended filterdefaultdeny filtercasesensitive filtertype reversebaseurl
    reverseonly reversemagic reversepath upstream loglevel
    """.split()
)


def is_squid(name: str) -> bool:
    return name in SQUID


def is_tinyproxy(name: str) -> bool:
    return name.lower() in TINYPROXY
