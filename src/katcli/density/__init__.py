"""katcli.density"""
