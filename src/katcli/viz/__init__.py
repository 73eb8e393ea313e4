"""katcli.viz"""
